#include <string>
#include <thread>
#include <cstring>
#include <cstdlib>
#include <cstdio>
int main(int argc,char**argv){ int nt=atoi(argv[1]); size_t mb=atol(argv[2]); unsigned long sum[8]={};
  std::thread ts[8]; for(int t=0;t<nt;t++) ts[t]=std::thread([&,t]{ char chunk[8192]; memset(chunk,'x',8192); std::string s; while(s.size()<(mb<<20)) s.append(chunk,8192); sum[t]=s.size(); });
  for(int t=0;t<nt;t++) ts[t].join(); printf("%lu\n",sum[0]); }
