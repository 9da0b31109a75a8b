#include <string>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
int main(int argc,char**argv){
  long n=atol(argv[1]); size_t lo=atol(argv[2]), hi=atol(argv[3]);
  std::mt19937 g(3); char chunk[8192]; memset(chunk,'x',sizeof chunk); unsigned long sum=0;
  for(long r=0;r<n;r++){ size_t mb = lo + g()%(hi-lo+1); std::string s; while(s.size()<(mb<<20)) s.append(chunk,sizeof chunk); sum+=s[s.size()/2]+s.size(); }
  fprintf(stderr,"sum %lu\n",sum);
}
