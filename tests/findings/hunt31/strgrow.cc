// Read-a-file pattern: std::string grown by appending 8 KiB chunks to N MiB
// (capacity doubles: new buffer, copy, delete old), then used.
#include <string>
#include <vector>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
static long rss_kb(){ long a,b; FILE*f=fopen("/proc/self/statm","r"); if(fscanf(f,"%ld %ld",&a,&b)!=2) b=0; fclose(f); return b*4; }
int main(int argc,char**argv){
  size_t mb = argc>1? atol(argv[1]):110; int vec = argc>2 && argv[2][0]=='v';
  char chunk[8192]; memset(chunk,'x',sizeof chunk);
  size_t sum=0;
  if(!vec){ std::string s; while(s.size() < (mb<<20)) s.append(chunk,sizeof chunk); sum=s.size();
    printf("string built: rss %ld KB\n", rss_kb()); }
  else { std::vector<long> v; while(v.size()*8 < (mb<<20)) v.push_back(v.size()); sum=v.size();
    printf("vector built: rss %ld KB\n", rss_kb()); }
  sleep(2); void* volatile p=malloc(300000); free(p);
  printf("after 2s idle + a call: rss %ld KB (sum %zu)\n", rss_kb(), sum);
}
