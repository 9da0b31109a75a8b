#include <vector>
#include <string>
#include <cstdio>
#include <cstring>
#include <cstdlib>
int main(int argc,char**argv){std::string m=argv[1];size_t N=(size_t)atoi(argv[2])<<20;unsigned long s=0;
 if(m=="vec"){for(int r=0;r<3;r++){std::vector<char> v;for(size_t i=0;i<N;i++)v.push_back((char)i);s+=v[N/2];}}
 else if(m=="str"){std::string t;for(size_t i=0;i<N/100;i++)t.append(100,(char)('a'+i%26));s=t.size()+t[N/3];}
 else if(m=="vec3"){std::vector<char> a,b,c;for(size_t i=0;i<N;i++){a.push_back(1);b.push_back(2);if(i%2)c.push_back(3);}s=a.size()+b.size()+c.size();}
 else if(m=="vecint"){std::vector<std::vector<int>> vs;for(int k=0;k<8;k++){std::vector<int> v;for(size_t i=0;i<N/4/8;i++)v.push_back(i);vs.push_back(std::move(v));}s=vs.size();}
 printf("%lu\n",s);}
